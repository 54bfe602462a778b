"""The command line (`whisper-desk transcribe|check|deploy|search|watch`, `python -m worker.cli`): arguments,
printing and exit codes over worker.jobs. The top of the core: nothing in worker/ imports it."""
