//! The texts the Rust side shows itself (the tray menu and tooltip, notifications), read from
//! the UI's catalogues (`ui/src/locales/*.json`, i18next's JSON format, compiled in): one
//! catalogue per language for both sides. The language is the one chosen in the settings
//! ([`Texts::of`]); "follow the system" is the first of the system's (`LANGUAGE`,
//! `LC_ALL`, `LC_MESSAGES`, `LANG`) that has a catalogue, else English; a message a
//! catalogue lacks comes from English. Only the `native.*` messages are read
//! here: plain texts with `{{name}}` placeholders (no plural forms).

use std::sync::OnceLock;

use serde_json::Value;

use crate::settings::Language;

const CATALOGUES: &[(&str, &str)] = &[
    ("en", include_str!("../../ui/src/locales/en.json")),
    ("fr", include_str!("../../ui/src/locales/fr.json")),
    ("ar", include_str!("../../ui/src/locales/ar.json")),
];

/// One language's messages, with English behind them.
#[derive(Debug)]
pub struct Texts {
    lang: &'static str,
    messages: Value,
    english: Value,
}

fn catalogue(lang: &str) -> Value {
    CATALOGUES
        .iter()
        .find(|(l, _)| *l == lang)
        .and_then(|(_, json)| serde_json::from_str(json).ok())
        .unwrap_or(Value::Null)
}

/// The first language of `wanted` (POSIX locale names or BCP 47 tags: `fr_FR.UTF-8`,
/// `fr-CA`, `ar`) that has a catalogue, else `en`.
pub fn pick_language<'a>(wanted: impl IntoIterator<Item = &'a str>) -> &'static str {
    for tag in wanted {
        let base = tag
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if let Some((lang, _)) = CATALOGUES.iter().find(|(l, _)| *l == base) {
            return lang;
        }
    }
    "en"
}

impl Texts {
    /// The messages of `lang` (`en` when it has no catalogue).
    pub fn for_language(lang: &str) -> Self {
        let lang = pick_language([lang]);
        Self {
            lang,
            messages: catalogue(lang),
            english: catalogue("en"),
        }
    }

    /// The system's language, read once from the environment.
    pub fn system() -> &'static Texts {
        static TEXTS: OnceLock<Texts> = OnceLock::new();
        TEXTS.get_or_init(|| {
            let vars: Vec<String> = ["LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"]
                .iter()
                .filter_map(|v| std::env::var(v).ok())
                .flat_map(|v| v.split(':').map(str::to_owned).collect::<Vec<_>>())
                .filter(|v| !v.is_empty())
                .collect();
            Texts::for_language(pick_language(vars.iter().map(String::as_str)))
        })
    }

    /// The texts of the language chosen in the settings (the system's for
    /// [`Language::System`]); each catalogue is read once.
    pub fn of(language: Language) -> &'static Texts {
        static CHOSEN: [OnceLock<Texts>; CATALOGUES.len()] =
            [const { OnceLock::new() }; CATALOGUES.len()];
        let Some(code) = language.code() else {
            return Self::system();
        };
        let slot = CATALOGUES
            .iter()
            .position(|(l, _)| *l == code)
            .and_then(|i| CHOSEN.get(i));
        match slot {
            Some(slot) => slot.get_or_init(|| Texts::for_language(code)),
            None => Self::system(),
        }
    }

    /// The language in use.
    pub fn language(&self) -> &'static str {
        self.lang
    }

    /// The message `key` (a dotted path, `native.trayQuit`) with `values` put in its
    /// `{{name}}` placeholders; English when this language lacks it, the key when both do.
    pub fn get(&self, key: &str, values: &[(&str, &str)]) -> String {
        let look = |root: &Value| {
            key.split('.')
                .try_fold(root, |v, part| v.get(part))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let mut text = look(&self.messages)
            .or_else(|| look(&self.english))
            .unwrap_or_else(|| key.to_owned());
        for (name, value) in values {
            text = text.replace(&format!("{{{{{name}}}}}"), value);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_first_language_with_a_catalogue() {
        assert_eq!(pick_language(["de_DE.UTF-8", "fr_FR.UTF-8"]), "fr");
        assert_eq!(pick_language(["ar_EG"]), "ar");
        assert_eq!(pick_language(["C.UTF-8", "POSIX"]), "en");
        assert_eq!(pick_language([]), "en");
    }

    #[test]
    fn every_native_text_in_english_and_french_with_its_placeholders() {
        let en = Texts::for_language("en");
        let fr = Texts::for_language("fr");
        let Some(keys) = catalogue("en")["native"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
        else {
            panic!("no native texts in en.json");
        };
        assert!(keys.len() >= 8, "{keys:?}");
        for key in keys {
            let key = format!("native.{key}");
            let (e, f) = (en.get(&key, &[]), fr.get(&key, &[]));
            assert_ne!(e, key, "{key} missing in English");
            assert!(
                catalogue("fr")["native"][key.trim_start_matches("native.")].is_string(),
                "{key} missing in French"
            );
            let holes = |t: &str| t.matches("{{").count();
            assert_eq!(holes(&e), holes(&f), "{key}: {e} / {f}");
        }
        assert_eq!(
            fr.get("native.notifyNew", &[("room", "lobby")]),
            "Nouveau message dans lobby"
        );
        assert_eq!(en.get("native.trayQuit", &[]), "Quit");
        let ar = Texts::for_language("ar_EG.UTF-8");
        assert_eq!(ar.language(), "ar");
        assert_eq!(ar.get("native.notifyOpen", &[]), "فتح");
        assert_eq!(en.get("native.nothing_here", &[]), "native.nothing_here");
    }

    #[test]
    fn every_native_text_in_arabic_with_its_placeholders() {
        let en = catalogue("en");
        let ar = catalogue("ar");
        let Some(native) = en["native"].as_object() else {
            panic!("no native texts in en.json");
        };
        for (key, text) in native {
            let (Some(e), Some(a)) = (text.as_str(), ar["native"][key].as_str()) else {
                panic!("native.{key} missing in Arabic");
            };
            let holes = |t: &str| {
                let mut h: Vec<String> = t
                    .split("{{")
                    .skip(1)
                    .map(|p| p.split("}}").next().unwrap_or("").to_owned())
                    .collect();
                h.sort_unstable();
                h
            };
            assert_eq!(holes(e), holes(a), "native.{key}: {e} / {a}");
        }
    }

    #[test]
    fn the_chosen_language_wins_over_the_system() {
        assert_eq!(Texts::of(Language::Ar).language(), "ar");
        assert_eq!(Texts::of(Language::Fr).language(), "fr");
        assert_eq!(Texts::of(Language::En).language(), "en");
        assert_eq!(
            Texts::of(Language::System).language(),
            Texts::system().language()
        );
        assert_eq!(Texts::of(Language::Ar).get("native.trayQuit", &[]), "إنهاء");
        // Every choice but the system's has its catalogue here, and the UI lists the same.
        let ui = include_str!("../../ui/src/lib/i18n.ts");
        for l in Language::ALL {
            if let Some(code) = l.code() {
                assert!(CATALOGUES.iter().any(|(c, _)| *c == code), "{code}");
                assert!(ui.contains(&format!("'{code}'")), "{code} not in i18n.ts");
            }
        }
    }
}
