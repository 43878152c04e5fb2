from tests.breakers.conftest import fresh_name  # noqa: F401
