"""Reading and writing music: MIDI (symusic), conversion in, rendering out."""
