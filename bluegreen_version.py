"""The one version number of argo-bluegreen, and the only place it is written.

pyproject.toml reads it for the package's version (``[tool.setuptools.dynamic]``); the default steps image's tag
(:data:`pipelines.settings.DEFAULT_IMAGE`), the ``app.kubernetes.io/version`` label on every rendered
WorkflowTemplate and CronWorkflow, ``make image``'s tag and every CLI's ``--version`` are made from it. So a release
bumps this line and nothing else, and ``kubectl bluegreen version`` can tell templates of another release apart.

Plain text on purpose: setuptools reads it without importing anything, and the steps image and the plugin import it
without any dependency.
"""

__version__ = "0.1.0"
