"""The programs that run inside the step containers, behind one CLI: ``bluegreen-step <step>``."""
