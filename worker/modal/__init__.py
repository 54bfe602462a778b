"""Everything Whisper Desk says to Modal, Qt-free and without importing `modal` until a call needs it:

- settings: the deployed app's names and limits (each defined once; worker/modal/app.py deploys them);
- credentials: tokens, profiles and the config file; errors: one line per modal exception;
- bounded: modal coroutines run with a time limit from any thread;
- checks: `whisper-desk check` (token, app); deploy: `whisper-desk deploy`; sign_in: `modal token new`;
  warm: a model's weights into the Volume;
- remote: the deployed class as the fan-out's RemoteTranscriber;
- app: the T4 app itself (what `whisper-desk deploy` puts on Modal); fanout: the Modal backend; cost: what a job
  costs.
May import worker.core, transcripts, media, engines, backends (the app itself only core, media and engines).
"""
