"""The ``fault_proxy`` fixture: a fresh fault-injecting proxy in front of the session's API server, per test.

Imported explicitly by the tests that need it (``from tests.integration.fault_proxy_fixture import fault_proxy``),
so the shared conftest stays as it is. One proxy per test keeps fault rules and the request log from leaking between
tests; starting one costs a socket and a thread.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testenv.cluster import KubeCluster
from testenv.fault_proxy import FaultProxy


@pytest.fixture
def fault_proxy(kube_cluster: KubeCluster) -> Iterator[FaultProxy]:
    """A started :class:`~testenv.fault_proxy.FaultProxy` to the session's API server, as its admin.

    At teardown the proxy is stopped (its clients closed); an exception inside the proxy fails the test, since
    then the proxy, not the code under test, may be what went wrong.
    """
    with FaultProxy(kube_cluster.configuration()) as proxy:
        yield proxy
    if proxy.errors:
        pytest.fail("fault proxy failed while handling requests:\n" + "\n".join(proxy.errors), pytrace=False)
