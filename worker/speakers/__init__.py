"""Who said what: the GE2E voice encoder in numpy, a pitch track, labelling a finished transcript's speakers, known
voices, and Qt-free speaker edits (rename, reassign, merge). May import the packages below it (library and down)."""
