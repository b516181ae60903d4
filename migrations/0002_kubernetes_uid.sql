-- A cluster declared by a KafkaCluster custom resource remembers the resource's uid: the
-- controller finds the cluster from the resource through it, and the unique index makes a second
-- create for the same resource impossible (NULLs, clusters created through the REST API, do not
-- collide on either database).
ALTER TABLE clusters ADD COLUMN kubernetes_uid TEXT;
CREATE UNIQUE INDEX clusters_kubernetes_uid_unique ON clusters (kubernetes_uid);
