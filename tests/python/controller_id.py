"""Print the active controller's broker id: controller_id.py BOOTSTRAP"""
import sys

from confluent_kafka.admin import AdminClient

admin = AdminClient({"bootstrap.servers": sys.argv[1]})
cluster = admin.describe_cluster(request_timeout=30).result(timeout=60)
print(cluster.controller.id)
