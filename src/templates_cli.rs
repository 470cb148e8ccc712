//! `gigs-notifier templates check|preview`: what an operator runs before shipping a template
//! set. `check` prints every problem (file, line, what) and every warning, and fails on any
//! problem — the same check `serve` runs at start-up. `preview` prints one kind's mail, as a
//! sample notice would be sent, in a locale.

use std::path::PathBuf;

use anyhow::anyhow;

use crate::config::{BrandSettings, RawSettings, SAMPLE_BRAND};
use crate::notice::context::BrandValues;
use crate::notice::locale::LocaleTag;
use crate::notice::render::choose_locale;
use crate::notice::samples::samples;
use crate::notice::{NoticeKind, NoticeSettings};

/// The brand settings with `--dir` in place of `TEMPLATES_DIR`, if given.
fn brand_settings(raw: &RawSettings, dir: Option<PathBuf>) -> anyhow::Result<BrandSettings> {
    let mut brand = raw.brand_settings()?;
    if dir.is_some() {
        brand.templates_dir = dir;
    }
    Ok(brand)
}

/// Check a template set; prints the report and returns whether it passed.
pub fn check(raw: &RawSettings, dir: Option<PathBuf>) -> anyhow::Result<bool> {
    let brand = brand_settings(raw, dir)?;
    println!(
        "checking {} (default locale {}, times in {})",
        brand.origin(),
        brand.default_locale,
        brand.zone.name()
    );
    let (set, report) = brand.load_templates(&brand.check_brands());
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for problem in &report.problems {
        println!("error: {problem}");
    }
    match set {
        Some(set) => {
            let locales: Vec<&str> = set.locales().map(LocaleTag::as_str).collect();
            let complete =
                |l: &LocaleTag| NoticeKind::ALL.iter().filter(|k| set.has(l, **k)).count();
            let counts: Vec<String> = set
                .locales()
                .map(|l| format!("{l} {}/{}", complete(l), NoticeKind::ALL.len()))
                .collect();
            println!(
                "ok: {} locale(s) ({}), kinds per locale: {}; {} warning(s)",
                locales.len(),
                locales.join(", "),
                counts.join(", "),
                report.warnings.len()
            );
            Ok(true)
        }
        None => {
            println!(
                "FAILED: {} problem(s); `serve` will not start with these templates",
                report.problems.len()
            );
            Ok(false)
        }
    }
}

/// Print the mail of `kind` (by code) in `locale`, rendered from its first sample notice.
pub fn preview(
    raw: &RawSettings,
    dir: Option<PathBuf>,
    kind: &str,
    locale: &str,
) -> anyhow::Result<bool> {
    let kind = NoticeKind::from_code(kind).ok_or_else(|| {
        let known: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.code()).collect();
        anyhow!(
            "--kind: unknown notice kind {kind:?}; known kinds: {}",
            known.join(", ")
        )
    })?;
    let asked = LocaleTag::parse(locale)
        .ok_or_else(|| anyhow!("--locale: not a locale tag such as en or es-US: {locale:?}"))?;
    let brand = brand_settings(raw, dir)?;
    let brands = brand.check_brands();
    let (set, report) = brand.load_templates(&brands);
    let Some(set) = set else {
        for problem in &report.problems {
            println!("error: {problem}");
        }
        println!("the templates do not check; run `gigs-notifier templates check`");
        return Ok(false);
    };
    let chosen = choose_locale(&set, kind, Some(&asked), &[]);
    let settings = NoticeSettings {
        templates: std::sync::Arc::new(set),
        // The configured name; the contacts the first checked brand has.
        brand: BrandValues {
            name: brand.brand.name.clone(),
            support_url: brands[0].support_url.clone(),
            support_email: brands[0].support_email.clone(),
            support_phone: brands[0].support_phone.clone(),
        },
        zone: brand.zone,
    };
    let notice = &samples(kind)[0];
    let rendered = settings
        .render_in(notice, &chosen, &settings.brand.for_project(SAMPLE_BRAND))
        .map_err(|e| anyhow!("{e}"))?;
    if chosen != asked && Some(&chosen) != asked.language().as_ref() {
        println!(
            "(no {} template in {asked}: falls back to {chosen})",
            kind.code()
        );
    }
    println!("kind:    {}", kind.code());
    println!("locale:  {chosen}");
    println!("subject: {}", rendered.subject);
    println!();
    println!("{}", rendered.content);
    if let Some(html) = rendered.html {
        println!("\n--- html ---\n{html}");
    }
    Ok(true)
}
