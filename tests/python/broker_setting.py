"""Print one setting of every broker, as each describes it: broker_setting.py BOOTSTRAP NAME
Prints `broker_id value` lines, in broker order."""
import sys

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

admin = AdminClient({"bootstrap.servers": sys.argv[1]})
name = sys.argv[2]
cluster = admin.describe_cluster(request_timeout=30).result(timeout=60)
for node in sorted(cluster.nodes, key=lambda n: n.id):
    resource = ConfigResource(ResourceType.BROKER, str(node.id))
    configs = admin.describe_configs([resource], request_timeout=30)[resource].result(timeout=60)
    print(node.id, configs[name].value)
