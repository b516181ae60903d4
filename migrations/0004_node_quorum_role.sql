-- A node's part in the cluster's metadata quorum: 'voter' (named in every broker's --voters) or
-- 'observer' (a broker added by a scale-out: it follows the quorum as a Raft learner, so adding
-- or removing it never changes the quorum's majority). Every node stored before this column
-- existed was created with its cluster and is a voter.
ALTER TABLE nodes ADD COLUMN quorum_role TEXT NOT NULL DEFAULT 'voter';
