"""The one trainer for every model family, its checkpoints, and the ``train`` stage.

The package is named ``training`` rather than ``train`` so that it never shadows the public
function ``midiforge.train`` (importing a subpackage binds its name on the parent package).
"""
