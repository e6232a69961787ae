"""``kubectl bluegreen``: the operator's command line for argo-bluegreen services, used as a kubectl plugin."""
