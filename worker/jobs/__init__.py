"""Jobs: the one queue (state machine, scheduling, leases, progress, cost summary) the window, the CLI and the
wizard share, which never transcribes the same recording twice by accident (same_recording); the backend pool;
preferences; watch folders; re-transcribing a region; subtitles imported for review; the export pipeline every
path calls, with the word aligner wired in (export). May import every other core package except cli."""
