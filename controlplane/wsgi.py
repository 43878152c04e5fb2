from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from controlplane.lib import tracing
from controlplane.startup import refuse_bad_production_config

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

application = get_wsgi_application()
refuse_bad_production_config()  # gunicorn runs no system checks itself
tracing.start_export()  # in the worker process: gunicorn forked before importing this
