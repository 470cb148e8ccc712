//! Languages: a validated locale tag (`es-US`), and the order in which a notice's language
//! is chosen — the user's `preferredLocale`, its language alone, the project's locales in
//! order, then `DEFAULT_LOCALE`.

use std::fmt;

/// A locale tag in one canonical spelling: language lower case, region upper case, script
/// title case (`es-us`, `es_US` and `ES-us` are all `es-US`). Only letters and digits in
/// parts of 1 to 8 characters: a tag is used as a directory name, so nothing else passes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocaleTag(String);

impl LocaleTag {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() || text.len() > 35 {
            return None;
        }
        let mut parts = Vec::new();
        for (i, part) in text.split(['-', '_']).enumerate() {
            if part.is_empty() || part.len() > 8 || !part.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return None;
            }
            let canonical = match (i, part.len()) {
                (0, 2..=3) if part.chars().all(|c| c.is_ascii_alphabetic()) => {
                    part.to_ascii_lowercase()
                }
                (0, _) => return None,
                (_, 2) => part.to_ascii_uppercase(),
                (_, 4) => {
                    let lower = part.to_ascii_lowercase();
                    let mut c = lower.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                }
                _ => part.to_ascii_lowercase(),
            };
            parts.push(canonical);
        }
        Some(Self(parts.join("-")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language alone (`es-MX` → `es`); `None` when the tag is a language already.
    pub fn language(&self) -> Option<Self> {
        self.0
            .split_once('-')
            .map(|(lang, _)| Self(lang.to_string()))
    }

    /// The language subtag (`es` of `es-MX`), for per-language formatting.
    pub fn language_code(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for LocaleTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The locales to try for one notice, best first, without repeats: the user's tag, its
/// language, each project locale (and its language), then the default.
pub fn fallback_chain(
    user: Option<&LocaleTag>,
    project: &[LocaleTag],
    default: &LocaleTag,
) -> Vec<LocaleTag> {
    let mut chain: Vec<LocaleTag> = Vec::new();
    let mut push = |tag: LocaleTag| {
        if !chain.contains(&tag) {
            chain.push(tag);
        }
    };
    if let Some(tag) = user {
        push(tag.clone());
        if let Some(lang) = tag.language() {
            push(lang);
        }
    }
    for tag in project {
        push(tag.clone());
        if let Some(lang) = tag.language() {
            push(lang);
        }
    }
    push(default.clone());
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> LocaleTag {
        LocaleTag::parse(s).unwrap()
    }

    #[test]
    fn tags_are_spelled_one_way_and_odd_input_is_refused() {
        assert_eq!(tag("es_us").as_str(), "es-US");
        assert_eq!(tag(" EN-gb ").as_str(), "en-GB");
        assert_eq!(tag("zh-hant-tw").as_str(), "zh-Hant-TW");
        assert_eq!(tag("es-419").as_str(), "es-419");
        for bad in [
            "", "e", "english", "en-", "../etc", "en/US", "en US", "1a-US",
        ] {
            assert_eq!(LocaleTag::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_chain_goes_user_then_language_then_project_then_default() {
        let chain = fallback_chain(
            Some(&tag("es-MX")),
            &[tag("de-AT"), tag("en-US"), tag("es")],
            &tag("en"),
        );
        let names: Vec<&str> = chain.iter().map(LocaleTag::as_str).collect();
        assert_eq!(names, ["es-MX", "es", "de-AT", "de", "en-US", "en"]);
    }

    #[test]
    fn without_a_user_locale_the_project_comes_first() {
        let chain = fallback_chain(None, &[tag("fr-CA")], &tag("en"));
        let names: Vec<&str> = chain.iter().map(LocaleTag::as_str).collect();
        assert_eq!(names, ["fr-CA", "fr", "en"]);
        let chain = fallback_chain(None, &[], &tag("de"));
        assert_eq!(chain, [tag("de")]);
    }
}
