//! handmatch-eval: the reference client. Enrols and identifies through the running
//! service, computes the same metrics as offline evaluation, writes the report, and
//! generates load.

pub mod client;
pub mod html_report;
pub mod load;
pub mod outputs;
pub mod run;
