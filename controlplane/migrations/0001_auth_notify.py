"""NOTIFY controlplane_auth with the user id when a token, user or group membership changes."""

from django.db import migrations

CREATE = """
CREATE FUNCTION controlplane_notify_auth() RETURNS trigger AS $$
DECLARE
    row_user text;
BEGIN
    -- Nested IFs: PL/pgSQL does not short-circuit, and auth_user has no user_id.
    IF TG_TABLE_NAME = 'auth_user' THEN
        IF TG_OP = 'DELETE' THEN
            row_user := OLD.id::text;
        ELSE
            row_user := NEW.id::text;
        END IF;
        PERFORM pg_notify('controlplane_auth', row_user);
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('controlplane_auth', OLD.user_id::text);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('controlplane_auth', NEW.user_id::text);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER controlplane_notify_auth AFTER UPDATE OR DELETE ON authtoken_token
FOR EACH ROW EXECUTE FUNCTION controlplane_notify_auth();
CREATE TRIGGER controlplane_notify_auth AFTER UPDATE OR DELETE ON auth_user
FOR EACH ROW EXECUTE FUNCTION controlplane_notify_auth();
CREATE TRIGGER controlplane_notify_auth AFTER INSERT OR UPDATE OR DELETE ON auth_user_groups
FOR EACH ROW EXECUTE FUNCTION controlplane_notify_auth();
"""

DROP = """
DROP TRIGGER IF EXISTS controlplane_notify_auth ON authtoken_token;
DROP TRIGGER IF EXISTS controlplane_notify_auth ON auth_user;
DROP TRIGGER IF EXISTS controlplane_notify_auth ON auth_user_groups;
DROP FUNCTION IF EXISTS controlplane_notify_auth();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
