//! The evaluation client's pieces that drive a running server over gRPC: bulk enrolment,
//! queries and the load generator.

pub mod client;
pub mod html_report;
pub mod load;
pub mod run;
