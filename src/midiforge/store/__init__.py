"""Every on-disk format of midiforge, owned once: the DATASET dir, the RUN dir, the shipped model.

``names``
    File names, format ids and versions, the split names.
``dataset_dir`` / ``dataset_writer``
    Reading a DATASET dir (manifest, memory-mapped arrays) / writing one (the one writer).
``tokenizer_file``
    ``tokenizer.json``: which MidiTok classes it may name, loading and saving.
``checkpoint``
    Weights (safetensors) and the resumable ``checkpoints/last`` (``state.pt``, RNG states).
``run_dir``
    ``config.yaml``, ``data_state.json``, :func:`~midiforge.store.run_dir.load_run`, the
    shipped default model, exporting a run.
``listing``
    The runs and datasets found under a folder, as the front ends list them.
``versions``
    The software versions a manifest and a run config record.

The formats are documented in ``docs/architecture.md``. Every other module reads and writes
them through these modules; none spells their file names. The store sits above ``models``
(``load_run`` builds the model) and below ``data``, so every stage can use it.
"""
