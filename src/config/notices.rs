//! The notice settings: where the templates are (`TEMPLATES_DIR`, else the bundled set),
//! the default locale, the brand values and the display time zone. `serve` needs a template
//! set that checks and at least one support contact; `templates check|preview` read the
//! same settings without needing the rest of `serve`'s.

use std::path::PathBuf;
use std::sync::Arc;

use chrono_tz::Tz;

use super::{parse_http_url, ConfigError, RawSettings};
use crate::domain::EmailAddress;
use crate::notice::check::{self, Report};
use crate::notice::context::{Brand, BrandValues};
use crate::notice::locale::LocaleTag;
use crate::notice::templates::{bundled_files, read_dir, TemplateFile, TemplateSet};
use crate::notice::{brand_name, NoticeSettings};

/// The brand name templates are checked and previewed with when `BRAND_NAME` is not set
/// (a running service uses the Gigs project's name then).
pub const SAMPLE_BRAND: &str = "Example Mobile";

/// The notice settings other than the templates themselves.
#[derive(Debug, Clone)]
pub struct BrandSettings {
    pub brand: BrandValues,
    pub zone: Tz,
    pub default_locale: LocaleTag,
    pub templates_dir: Option<PathBuf>,
}

impl BrandSettings {
    /// What the templates are checked with: the configured brand values, or, with no
    /// support contact configured, each kind of contact alone and all of them.
    pub fn check_brands(&self) -> Vec<Brand> {
        if self.brand.has_contact() {
            return vec![self.brand.for_project(SAMPLE_BRAND)];
        }
        let url = Some("https://help.example.com".to_string());
        let email = Some("support@example.com".to_string());
        let phone = Some("+1 800 555 0100".to_string());
        let with = |u: &Option<String>, e: &Option<String>, p: &Option<String>| Brand {
            support_url: u.clone(),
            support_email: e.clone(),
            support_phone: p.clone(),
            ..self.brand.for_project(SAMPLE_BRAND)
        };
        vec![
            with(&url, &email, &phone),
            with(&url, &None, &None),
            with(&None, &email, &None),
            with(&None, &None, &phone),
        ]
    }

    /// Where the templates come from, for messages.
    pub fn origin(&self) -> String {
        match &self.templates_dir {
            Some(dir) => dir.display().to_string(),
            None => "the bundled templates".to_string(),
        }
    }

    /// Read and check the template set with `brands`.
    pub fn load_templates(&self, brands: &[Brand]) -> (Option<TemplateSet>, Report) {
        let files: Vec<TemplateFile> = match &self.templates_dir {
            Some(dir) => match read_dir(dir) {
                Ok(files) => files,
                Err(report) => return (None, report),
            },
            None => bundled_files(),
        };
        check::load(files, &self.default_locale, brands, self.zone)
    }
}

impl RawSettings {
    /// `BRAND_NAME`, `SUPPORT_*`, `DISPLAY_TIMEZONE`, `DEFAULT_LOCALE`, `TEMPLATES_DIR`.
    pub fn brand_settings(&self) -> Result<BrandSettings, ConfigError> {
        let support_url = match self.get("SUPPORT_URL") {
            // Validated, then shown as the operator wrote it (no added trailing slash).
            Some(text) => {
                parse_http_url(text).map_err(|p| ConfigError::new("SUPPORT_URL", p))?;
                Some(text.to_string())
            }
            None => None,
        };
        let support_email = match self.get("SUPPORT_EMAIL") {
            Some(text) => Some(
                EmailAddress::parse(text)
                    .map_err(|_| ConfigError::new("SUPPORT_EMAIL", "must be an email address"))?
                    .expose()
                    .to_string(),
            ),
            None => None,
        };
        let support_phone = match self.get("SUPPORT_PHONE") {
            Some(text) => Some(phone(text)?),
            None => None,
        };
        let zone_text = self.get("DISPLAY_TIMEZONE").unwrap_or("UTC");
        let zone: Tz = zone_text.parse().map_err(|_| {
            ConfigError::new(
                "DISPLAY_TIMEZONE",
                format!(
                    "must be an IANA time zone name such as America/New_York, got {zone_text:?}"
                ),
            )
        })?;
        let locale_text = self.get("DEFAULT_LOCALE").unwrap_or("en");
        let default_locale = LocaleTag::parse(locale_text).ok_or_else(|| {
            ConfigError::new(
                "DEFAULT_LOCALE",
                format!("must be a locale tag such as en or es-US, got {locale_text:?}"),
            )
        })?;
        Ok(BrandSettings {
            brand: BrandValues {
                name: self.get("BRAND_NAME").and_then(brand_name),
                support_url,
                support_email,
                support_phone,
            },
            zone,
            default_locale,
            templates_dir: self.get("TEMPLATES_DIR").map(PathBuf::from),
        })
    }

    /// What `serve` needs: the brand values with at least one support contact, and a
    /// template set that checks with them.
    pub fn notice_settings(&self) -> Result<NoticeSettings, ConfigError> {
        let brand = self.brand_settings()?;
        if !brand.brand.has_contact() {
            return Err(ConfigError::new(
                "SUPPORT_URL",
                "set at least one of SUPPORT_URL, SUPPORT_EMAIL and SUPPORT_PHONE: every \
                 security notice tells the customer how to reach support",
            ));
        }
        let (set, report) = brand.load_templates(&brand.check_brands());
        let Some(set) = set else {
            let lines: Vec<String> = report.problems.iter().map(|p| format!("  {p}")).collect();
            return Err(ConfigError::new(
                "TEMPLATES_DIR",
                format!(
                    "{} do not check (run `gigs-notifier templates check`):\n{}",
                    brand.origin(),
                    lines.join("\n")
                ),
            ));
        };
        for warning in &report.warnings {
            tracing::warn!(warning = %warning, "template set");
        }
        Ok(NoticeSettings {
            templates: Arc::new(set),
            brand: brand.brand,
            zone: brand.zone,
        })
    }
}

/// A support phone number: digits, spaces and `+ - ( ) .`, with at least three digits.
fn phone(text: &str) -> Result<String, ConfigError> {
    let ok = text.len() <= 32
        && text.chars().filter(char::is_ascii_digit).count() >= 3
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if ok {
        Ok(text.to_string())
    } else {
        Err(ConfigError::new(
            "SUPPORT_PHONE",
            "must be a phone number (digits, spaces and + - ( ) ., at most 32 characters)",
        ))
    }
}
