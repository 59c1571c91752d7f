//! Tests only: the end-to-end tests in tests/ start the server in-process with artefacts
//! from the exporter and models from the trainer, and drive it with the client.
