from tests.jobs.conftest import clean_jobs, start_worker  # noqa: F401 -- shared fixtures
