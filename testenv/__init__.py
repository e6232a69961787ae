"""Test control plane for argo-bluegreen: a real etcd + kube-apiserver and the CRDs we target.

The package exists so tests exercise the real API server (admission, RBAC, CEL, server-side
apply) instead of mocks. Importing it must stay cheap and stdlib-only, because
``testenv/build.py`` imports ``testenv.paths`` before any third-party package is installed.
"""
