"""Transcripts: the model (words, segments, speakers), Qt-free editing, stitching chunk answers in order, subtitle
rules (one cue engine) and the file formats. May import worker.core only."""
