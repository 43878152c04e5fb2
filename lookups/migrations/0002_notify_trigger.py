"""NOTIFY every process when a mapping is created, changed or deleted (any path, even raw SQL)."""

from django.db import migrations

CREATE = """
CREATE FUNCTION lookups_notify_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('controlplane_lookups', OLD.slug);
    ELSE
        PERFORM pg_notify('controlplane_lookups', NEW.slug);
        IF TG_OP = 'UPDATE' AND OLD.slug IS DISTINCT FROM NEW.slug THEN
            PERFORM pg_notify('controlplane_lookups', OLD.slug);
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION lookups_touch_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER lookups_touch_updated_at
BEFORE UPDATE ON lookups_microservice
FOR EACH ROW EXECUTE FUNCTION lookups_touch_updated_at();

CREATE TRIGGER lookups_notify_change
AFTER INSERT OR UPDATE OR DELETE ON lookups_microservice
FOR EACH ROW EXECUTE FUNCTION lookups_notify_change();

CREATE TRIGGER lookups_notify_truncate
AFTER TRUNCATE ON lookups_microservice
FOR EACH STATEMENT EXECUTE FUNCTION lookups_notify_truncate();
"""

CREATE_TRUNCATE_FN = """
CREATE FUNCTION lookups_notify_truncate() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('controlplane_lookups', '*');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

DROP = """
DROP TRIGGER IF EXISTS lookups_notify_truncate ON lookups_microservice;
DROP TRIGGER IF EXISTS lookups_notify_change ON lookups_microservice;
DROP TRIGGER IF EXISTS lookups_touch_updated_at ON lookups_microservice;
DROP FUNCTION IF EXISTS lookups_touch_updated_at();
DROP FUNCTION IF EXISTS lookups_notify_truncate();
DROP FUNCTION IF EXISTS lookups_notify_change();
"""


class Migration(migrations.Migration):
    dependencies = [("lookups", "0001_initial")]

    operations = [migrations.RunSQL(CREATE_TRUNCATE_FN + CREATE, DROP)]
