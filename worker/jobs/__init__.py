"""Jobs: the one queue (state machine, scheduling, leases, progress, cost summary) the window, the CLI and the
wizard share; the backend pool; preferences; watch folders; re-transcribing a region; subtitles imported for
review. May import every other core package except cli."""
