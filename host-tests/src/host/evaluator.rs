//! Two ways to run the same policy entry points: through the built `.wasm` on wasmtime (what
//! the CLI and policy-server do), or natively by calling the guest's own functions compiled
//! for the host. The case corpus runs both and requires identical answers.

use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;

use crate::host::wapc::{CallError, PolicyModule};

/// Why an evaluation produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The waPC call failed (guest error, trap, deadline).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The module answered something that is not the expected JSON.
    #[error("the module's {operation} answer is not valid: {message}")]
    Answer {
        /// The waPC operation.
        operation: String,
        /// The decoding error.
        message: String,
    },
}

/// A policy entry point runner.
pub trait Evaluator {
    /// `validate_settings` with the settings JSON.
    fn validate_settings(&self, settings: &[u8]) -> Result<SettingsValidationResponse, EvalError>;
    /// `validate` with a `ValidationRequest` JSON.
    fn validate(&self, request: &[u8]) -> Result<ValidationResponse, EvalError>;
    /// A runner for one thread's many `validate` calls. The module's keeps one instance warm
    /// (its settings compiled once); by default every call is a [`Evaluator::validate`].
    fn worker(&self) -> Box<dyn Worker + '_> {
        Box::new(EachCall(self))
    }
}

/// Many `validate` calls from one thread ([`Evaluator::worker`]).
pub trait Worker {
    /// `validate_settings` with the settings JSON. On a warm instance this compiles the
    /// settings once for the `validate` calls that follow (the guest keeps the last settings
    /// it compiled), so checking them first costs nothing more.
    fn validate_settings(
        &mut self,
        settings: &[u8],
    ) -> Result<SettingsValidationResponse, EvalError>;
    /// `validate` with a `ValidationRequest` JSON.
    fn validate(&mut self, request: &[u8]) -> Result<ValidationResponse, EvalError>;
}

struct EachCall<'a, E: Evaluator + ?Sized>(&'a E);

impl<E: Evaluator + ?Sized> Worker for EachCall<'_, E> {
    fn validate_settings(
        &mut self,
        settings: &[u8],
    ) -> Result<SettingsValidationResponse, EvalError> {
        self.0.validate_settings(settings)
    }

    fn validate(&mut self, request: &[u8]) -> Result<ValidationResponse, EvalError> {
        self.0.validate(request)
    }
}

impl Worker for crate::host::wapc::Session<'_> {
    fn validate_settings(
        &mut self,
        settings: &[u8],
    ) -> Result<SettingsValidationResponse, EvalError> {
        decode(
            "validate_settings",
            &self.call("validate_settings", settings)?,
        )
    }

    fn validate(&mut self, request: &[u8]) -> Result<ValidationResponse, EvalError> {
        decode("validate", &self.call("validate", request)?)
    }
}

fn decode<T: serde::de::DeserializeOwned>(operation: &str, bytes: &[u8]) -> Result<T, EvalError> {
    serde_json::from_slice(bytes).map_err(|e| EvalError::Answer {
        operation: operation.to_owned(),
        message: e.to_string(),
    })
}

impl Evaluator for PolicyModule {
    fn validate_settings(&self, settings: &[u8]) -> Result<SettingsValidationResponse, EvalError> {
        decode(
            "validate_settings",
            &self.call("validate_settings", settings)?,
        )
    }

    fn validate(&self, request: &[u8]) -> Result<ValidationResponse, EvalError> {
        decode("validate", &self.call("validate", request)?)
    }

    fn worker(&self) -> Box<dyn Worker + '_> {
        Box::new(self.session())
    }
}

/// The guest's functions, compiled for the host.
#[derive(Debug, Default, Clone, Copy)]
pub struct Native;

impl Evaluator for Native {
    fn validate_settings(&self, settings: &[u8]) -> Result<SettingsValidationResponse, EvalError> {
        let bytes = serde_json::to_vec(&apart_wasm::validate_settings_payload(settings))
            .unwrap_or_default();
        decode("validate_settings", &bytes)
    }

    fn validate(&self, request: &[u8]) -> Result<ValidationResponse, EvalError> {
        let bytes = serde_json::to_vec(&apart_wasm::validate_payload(request)).unwrap_or_default();
        decode("validate", &bytes)
    }
}
