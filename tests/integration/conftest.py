"""Fixtures the integration tests share: a fault-injecting proxy, and a factory for services under test.

The cluster itself (``kube_cluster``, ``make_namespace``, ``impersonating_client``) comes from the
``testenv.pytest_plugin`` loaded by ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from testenv.cluster import KubeCluster
from testenv.fault_proxy import FaultProxy
from tests.integration.service_helpers import ServiceFactory


@pytest.fixture
def fault_proxy(kube_cluster: KubeCluster) -> Iterator[FaultProxy]:
    """A started :class:`~testenv.fault_proxy.FaultProxy` to the session's API server, as its admin.

    One proxy per test keeps fault rules and the request log from leaking between tests; starting one costs a socket
    and a thread. At teardown the proxy is stopped (its clients closed); an exception inside the proxy fails the
    test, since then the proxy, not the code under test, may be what went wrong.
    """
    with FaultProxy(kube_cluster.configuration()) as proxy:
        yield proxy
    if proxy.errors:
        pytest.fail("fault proxy failed while handling requests:\n" + "\n".join(proxy.errors), pytrace=False)


@pytest.fixture
def make_service(
    kube_cluster: KubeCluster,
    make_namespace: Callable[..., str],
    impersonating_client: Callable[[str, str], client.ApiClient],
) -> ServiceFactory:
    """``make_service("prefix", router=..., **spec_fields)``: an unmanaged service in a namespace of its own."""
    return ServiceFactory(kube_cluster, make_namespace, impersonating_client)
