"""``bluegreen-lint``: checks rendered Argo objects and BlueGreenDeployment files before they reach a cluster.

Hera validates types but not Argo's semantics (a dangling ``depends``, a cycle, an undeclared parameter and a
dropped v3-style ``mutex`` all render without a word), so these checks close that gap offline.
"""
