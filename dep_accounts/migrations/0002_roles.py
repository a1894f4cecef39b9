"""The two roles: admins may do everything, viewers may only look."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    "view_depaccount",
    "view_depdevice",
    "view_enrollmentprofile",
    "view_subscriptionlicence",
    "view_auditevent",
    "view_servertoken",
]
MANAGE = ["manage_dep_accounts"]


def roles_create(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = Permission.objects.filter(content_type__app_label="dep_accounts")
    viewers, _ = Group.objects.get_or_create(name="viewers")
    viewers.permissions.set(perms.filter(codename__in=VIEW))
    admins, _ = Group.objects.get_or_create(name="admins")
    admins.permissions.set(perms.filter(codename__in=VIEW + MANAGE))


def roles_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["viewers", "admins"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dep_accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(roles_create, roles_delete)]
