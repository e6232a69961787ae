"""Hera definitions of every object argo-bluegreen installs, and the tools that render and lint them."""
