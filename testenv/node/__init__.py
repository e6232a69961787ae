"""The local cluster's node agent: the one stand-in among real components.

It registers a Node and runs each Pod bound to it as local processes, each container in its own
mount namespace with a private root, each Pod in its own network namespace on the cluster's
bridge. Modules, one concept each:

- ``network``: the cluster's node namespace, bridge and routes; Pod namespaces and addresses
- ``images``: the table mapping image repositories to local programs
- ``launcher`` / ``sandbox``: building a container's private root and namespaces, and exec
- ``processes``: cgroups per container so whole process trees can be killed and swept
- ``exits``: waking a Pod's worker the moment one of its container processes exits
- ``container_logs``: each container's stdout/stderr as CRI log records, read back as the kubelet does
- ``kubelet_server``: the kubelet's HTTPS endpoint for ``kubectl logs`` (``/containerLogs``, ``/healthz``)
- ``volumes``, ``downward``, ``env``: what a container sees
- ``probes``: startup, readiness, liveness, and lifecycle hook actions
- ``lifecycle``: one Pod's life (init, sidecars, containers, restarts, status, deletion)
- ``agent``: the Node, its Lease and the Pod watch
- ``__main__``: ``python -m testenv.node`` for the cluster orchestrator
"""
