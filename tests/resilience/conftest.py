from tests.breakers.conftest import fresh_name  # noqa: F401
from tests.resilience.groups import health_of, upstream_group  # noqa: F401
