pub mod certificate;
