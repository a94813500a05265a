//! The one integration-test binary: every test of the forwarder as a whole (the binary, real
//! sockets, real files, the test doubles), one module per feature, sharing one `support`.
//! One binary links once per change instead of once per file.

mod config_load;
mod edges_child;
mod harness;
mod reliability_child;
mod support;

mod admin_e2e;
mod admin_hostile;
mod auth_check;
mod auth_config;
mod auth_e2e;
mod auth_edges;
mod auth_provider;
mod auth_rotation;
mod buffer_depth;
mod cli;
mod config;
mod doubles;
mod dropin_original;
mod fixtures_e2e;
mod forward_e2e;
mod hostile_answers;
mod image_e2e;
mod ingest_bounds;
mod interop_carbon;
mod layers;
mod logs;
mod otel;
mod protocol_fixtures;
mod protocol_hostile;
mod real_cluster;
mod real_keystone;
mod real_kube;
mod real_mimic;
mod real_prometheus;
mod reliability_faults;
mod reliability_hostile;
mod shutdown;
mod spool_crash;
mod spool_e2e;
