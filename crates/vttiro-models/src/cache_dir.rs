//! Where the model cache lives when the caller does not say.

use std::ffi::OsString;
use std::path::PathBuf;

/// Environment variable that points the cache at an explicit directory.
pub const MODEL_DIR_ENV: &str = "VTTIRO_MODEL_DIR";

/// `$VTTIRO_MODEL_DIR`, else `$XDG_CACHE_HOME/vttiro/models`, else `~/.cache/vttiro/models`.
/// `None` only when none of those can be determined (no home directory).
pub fn default_model_dir() -> Option<PathBuf> {
    model_dir_from(|key| std::env::var_os(key), dirs::home_dir())
}

/// The lookup behind [`default_model_dir`] with the environment and home directory passed
/// in, so it can be exercised without mutating the process environment. Empty or relative
/// XDG values are ignored as the XDG base-directory spec requires.
pub fn model_dir_from(
    env: impl Fn(&str) -> Option<OsString>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    if let Some(dir) = env(MODEL_DIR_ENV).filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let xdg_cache = env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute());
    let cache = xdg_cache.or_else(|| home.map(|home| home.join(".cache")))?;
    Some(cache.join("vttiro").join("models"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn explicit_dir_wins_over_xdg_and_home() {
        let env = env_of(&[(MODEL_DIR_ENV, "/m"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(
            model_dir_from(env, Some("/h".into())),
            Some(PathBuf::from("/m"))
        );
    }

    #[test]
    fn xdg_cache_home_is_used_when_absolute() {
        let env = env_of(&[("XDG_CACHE_HOME", "/x")]);
        assert_eq!(
            model_dir_from(env, Some("/h".into())),
            Some(PathBuf::from("/x/vttiro/models"))
        );
    }

    #[test]
    fn relative_or_empty_values_fall_back_to_home() {
        let env = env_of(&[("XDG_CACHE_HOME", "rel"), (MODEL_DIR_ENV, "")]);
        assert_eq!(
            model_dir_from(env, Some("/h".into())),
            Some(PathBuf::from("/h/.cache/vttiro/models"))
        );
        assert_eq!(model_dir_from(env_of(&[]), None), None);
    }
}
