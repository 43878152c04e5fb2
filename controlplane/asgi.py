from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from controlplane.lib import tracing
from controlplane.startup import refuse_bad_production_config

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

application = get_asgi_application()
refuse_bad_production_config()  # gunicorn runs no system checks itself
tracing.start_export()  # in the serving process, after any fork
