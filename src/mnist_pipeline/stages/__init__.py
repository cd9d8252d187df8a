"""The pipeline's stages, one module each: what ``dvc.yaml`` runs (``python -m ...stages.NAME``).

Each has one ``main(root)`` that reads ``params.yaml`` and its paths (from
:mod:`mnist_contracts.paths`) under ``root``, and pure functions under it. A stage never imports
another stage: what two share lives in the library modules of :mod:`mnist_pipeline`.
"""
