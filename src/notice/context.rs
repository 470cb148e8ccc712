//! The template context: the only values a template can see. It is built from a [`Notice`]'s
//! allow-listed fields and the operator's brand values, and from nothing else, so no
//! template — bundled or the operator's — can reach a name, an address or a number.
//!
//! Each kind declares the variables it may use ([`NoticeKind::variables`]); a template that
//! names any other fails the start-up check, and the context of a kind holds exactly those
//! variables (absent values are `none`, so templates can test them under strict undefined).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::Value;

use super::locale::LocaleTag;
use super::{InfoKind, Notice, NoticeKind};
use crate::event::{ActorKind, SimKind};

/// Variables every kind may use.
pub const COMMON: &[&str] = &["kind", "brand", "occurred_at", "time_zone", "actor"];

/// The attributes of `brand`.
pub const BRAND_FIELDS: &[&str] = &["name", "support_url", "support_email", "support_phone"];

/// Names a template may use that are not context variables: minijinja's own globals and
/// the loop/macro names it defines itself.
pub const ENGINE_NAMES: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "loop",
    "self",
    "super",
    "caller",
    "varargs",
    "kwargs",
    "true",
    "false",
    "none",
];

impl NoticeKind {
    /// The variables this kind's templates may use beyond [`COMMON`]. A new kind that
    /// needs none of them is an enum variant, its code and its template files.
    pub fn extra_variables(self) -> &'static [&'static str] {
        use NoticeKind as K;
        match self {
            K::PortOutCredentialsIssued => &["line", "expires_at"],
            K::AccountInformationChanged | K::EmailAddressReplaced => &["changed"],
            K::PlanChanged => &["line", "plan"],
            K::SimChanged | K::SimChangeRequested => &["line", "sim"],
            K::SimAndPlanChanged => &["line", "sim", "plan"],
            K::SimChangeNotCompleted => &["line"],
            K::PortOutRequested | K::PortOutCompleted | K::PortOutNotCompleted => {
                &["line", "cancel_only"]
            }
            K::AddressAdded | K::AddressRemoved => &[],
            K::Subscription(_) => &["line"],
        }
    }

    /// Every variable this kind's templates may use.
    pub fn variables(self) -> Vec<&'static str> {
        COMMON
            .iter()
            .chain(self.extra_variables())
            .copied()
            .collect()
    }
}

/// Every variable any kind may use (what shared partials are checked against).
pub fn all_variables() -> Vec<&'static str> {
    let mut all: Vec<&str> = NoticeKind::ALL.iter().flat_map(|k| k.variables()).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The brand values notices are signed with and point to for help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    pub name: String,
    pub support_url: Option<String>,
    pub support_email: Option<String>,
    pub support_phone: Option<String>,
}

/// The brand as the operator configured it (`BRAND_NAME`, `SUPPORT_URL`, `SUPPORT_EMAIL`,
/// `SUPPORT_PHONE`): what [`Brand`] is made from, the name falling back to the project's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandValues {
    pub name: Option<String>,
    pub support_url: Option<String>,
    pub support_email: Option<String>,
    pub support_phone: Option<String>,
}

impl BrandValues {
    /// Whether notices can name at least one way to reach support.
    pub fn has_contact(&self) -> bool {
        self.support_url.is_some() || self.support_email.is_some() || self.support_phone.is_some()
    }

    /// The brand to render with, named `project` when `BRAND_NAME` is not set.
    pub fn for_project(&self, project: &str) -> Brand {
        Brand {
            name: self.name.clone().unwrap_or_else(|| project.to_string()),
            support_url: self.support_url.clone(),
            support_email: self.support_email.clone(),
            support_phone: self.support_phone.clone(),
        }
    }
}

/// How times are shown: in this zone, in this locale's way.
#[derive(Debug, Clone, Copy)]
pub struct Display<'a> {
    pub zone: Tz,
    pub locale: &'a LocaleTag,
}

/// The context of `notice`'s templates: exactly its kind's variables.
pub fn build(notice: &Notice, brand: &Brand, display: Display<'_>) -> Value {
    let time = |t: DateTime<Utc>| Value::from(format_time(t, display));
    let opt = |v: Option<Value>| v.unwrap_or(Value::from(()));
    notice
        .kind
        .variables()
        .into_iter()
        .map(|name| {
            let value = match name {
                "kind" => Value::from(notice.kind.code()),
                "brand" => brand_value(brand),
                "occurred_at" => time(notice.occurred_at),
                "time_zone" => Value::from(display.zone.name()),
                "actor" => opt(notice.actor.map(|a| Value::from(actor_code(a)))),
                "line" => opt(notice.line.as_ref().map(|l| Value::from(l.as_str()))),
                "expires_at" => opt(notice.expires_at.map(time)),
                "changed" => Value::from(
                    notice
                        .changed
                        .iter()
                        .map(|c| info_code(*c))
                        .collect::<Vec<_>>(),
                ),
                "plan" => opt(notice.plan.as_ref().map(|p| Value::from(p.as_str()))),
                "sim" => opt(notice.sim.map(|s| Value::from(sim_code(s)))),
                "cancel_only" => Value::from(notice.cancel_only),
                // `variables()` names only the arms above; a new name needs its arm here.
                _ => Value::from(()),
            };
            (name, value)
        })
        .collect::<BTreeMap<&str, Value>>()
        .into()
}

fn brand_value(brand: &Brand) -> Value {
    let opt = |v: &Option<String>| v.as_deref().map(Value::from).unwrap_or(Value::from(()));
    [
        ("name", Value::from(brand.name.as_str())),
        ("support_url", opt(&brand.support_url)),
        ("support_email", opt(&brand.support_email)),
        ("support_phone", opt(&brand.support_phone)),
    ]
    .into_iter()
    .collect::<BTreeMap<&str, Value>>()
    .into()
}

/// Who made the change, as a template sees it.
pub fn actor_code(actor: ActorKind) -> &'static str {
    match actor {
        ActorKind::Customer => "customer",
        ActorKind::Support => "support",
        ActorKind::OperatorSystems => "operator_systems",
        ActorKind::Platform => "platform",
    }
}

/// The kind of SIM, as a template sees it.
pub fn sim_code(sim: SimKind) -> &'static str {
    match sim {
        SimKind::ESim => "esim",
        SimKind::PhysicalSim => "physical",
        SimKind::Unknown => "unknown",
    }
}

/// A kind of changed information, as a template sees it.
pub fn info_code(kind: InfoKind) -> &'static str {
    match kind {
        InfoKind::EmailAddress => "email_address",
        InfoKind::FullName => "full_name",
        InfoKind::Birthday => "birthday",
        InfoKind::PreferredLanguage => "preferred_language",
        InfoKind::EmailVerification => "email_verification",
        InfoKind::OtherAccountDetails => "other",
    }
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];
const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];

/// A date and time in the display zone, written the locale's way (English, Spanish and
/// German by name; any other language as ISO 8601, which every reader can place), with
/// the zone's abbreviation so the reader knows which clock it is.
pub fn format_time(t: DateTime<Utc>, display: Display<'_>) -> String {
    use chrono::{Datelike, Timelike};
    let local = t.with_timezone(&display.zone);
    let zone = local.format("%Z");
    let month = local.month0() as usize;
    let (day, year, hour, minute) = (local.day(), local.year(), local.hour(), local.minute());
    match display.locale.language_code() {
        "en" => {
            let (pm, h12) = local.hour12();
            let ampm = if pm { "PM" } else { "AM" };
            format!(
                "{} {day}, {year} at {h12}:{minute:02} {ampm} {zone}",
                MONTHS_EN[month]
            )
        }
        "es" => format!(
            "{day} de {} de {year} a las {hour:02}:{minute:02} ({zone})",
            MONTHS_ES[month]
        ),
        "de" => format!(
            "{day}. {} {year} um {hour:02}:{minute:02} Uhr ({zone})",
            MONTHS_DE[month]
        ),
        _ => format!("{} ({zone})", local.format("%Y-%m-%d %H:%M")),
    }
}
