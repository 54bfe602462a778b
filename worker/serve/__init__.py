"""`whisper-desk serve`'s OpenAI-compatible speech-to-text API: the protocol (OpenAI's fields, errors and response
formats, rendered by the one export pipeline), the service that turns each request into a job of the one queue
and library, and the HTTP server (aiohttp). May import every other core package except cli."""
