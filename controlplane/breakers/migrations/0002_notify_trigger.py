"""Tell every process when a breaker changes generation (transition or override).

A trigger, so changes made anywhere (the breaker runtime, the admin, the ORM,
psql) invalidate every process's snapshot.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION breakers_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('controlplane_breakers', NEW.name);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER breakers_notify_change
AFTER UPDATE ON breakers_breaker
FOR EACH ROW
WHEN (OLD.generation IS DISTINCT FROM NEW.generation
      OR OLD.override IS DISTINCT FROM NEW.override
      OR OLD.state IS DISTINCT FROM NEW.state)
EXECUTE FUNCTION breakers_notify_change();
"""

DROP = """
DROP TRIGGER IF EXISTS breakers_notify_change ON breakers_breaker;
DROP FUNCTION IF EXISTS breakers_notify_change();
"""


class Migration(migrations.Migration):
    dependencies = [("breakers", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
