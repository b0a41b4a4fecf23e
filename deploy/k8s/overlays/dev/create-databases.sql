-- One PostgreSQL server, one database per service (each service owns its tables).
-- The official image runs this once, when its data volume is first initialised;
-- terrascale_users is created by POSTGRES_DB.
CREATE DATABASE terrascale_graph;
CREATE DATABASE terrascale_posts;
CREATE DATABASE terrascale_timelines;
CREATE DATABASE terrascale_notifications;
