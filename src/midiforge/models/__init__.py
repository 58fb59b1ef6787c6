"""Model families, one file each; :mod:`midiforge.models.registry` maps a name to a class."""
