"""Transcripts: the model (words, segments, speakers), Qt-free editing, stitching chunk answers in order, subtitle
rules (one cue engine), the documents (TXT, TSV, JSON, DOCX) and the one export pipeline (formats: a word aligner
is injected). May import worker.core only."""
