//! The template set: one subject and one text body (and optionally an HTML body) per notice
//! kind and locale, `<locale>/<kind code>.subject|.txt|.html`, from `TEMPLATES_DIR` or the
//! set bundled into the binary from `templates/`. Files whose name starts with `_` are
//! partials a locale's templates may `{% include %}` or `{% import %}`.
//!
//! Templates run in minijinja with strict undefined values, and printing a value that is
//! not set (`none`) is an error too, so a template cannot silently print "none" or nothing
//! where a value was meant. A set is only used once it passes [`super::check`].

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use super::check::{Problem, Report};
use super::locale::LocaleTag;
use super::NoticeKind;

/// The three files of a kind, by extension.
pub const SUBJECT: &str = "subject";
pub const TEXT: &str = "txt";
pub const HTML: &str = "html";

/// Largest template file accepted, so a stray large file cannot fill the memory.
const MAX_FILE_BYTES: u64 = 64 * 1024;

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_templates.rs"));
}

/// One template file: its path under the template directory (`en/plan_changed.txt`).
#[derive(Debug, Clone)]
pub struct TemplateFile {
    pub path: String,
    pub text: String,
}

/// The bundled set (compiled in from `templates/`).
pub fn bundled_files() -> Vec<TemplateFile> {
    bundled::FILES
        .iter()
        .map(|(path, text)| TemplateFile {
            path: path.to_string(),
            text: text.to_string(),
        })
        .collect()
}

/// The files of a template directory: `<dir>/<locale>/<file>`, hidden files skipped.
pub fn read_dir(dir: &Path) -> Result<Vec<TemplateFile>, Report> {
    let unreadable = |what: &Path, e: std::io::Error| {
        Report::fail(Problem::file(
            what.display().to_string(),
            format!("cannot be read: {e}"),
        ))
    };
    let mut files = Vec::new();
    let mut report = Report::default();
    let locales = std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))?;
    for locale in locales {
        let locale = locale.map_err(|e| unreadable(dir, e))?;
        let name = locale.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if !locale.path().is_dir() {
            report.warn(format!(
                "{name}: not a locale directory, ignored (expected <locale>/<kind>.<ext>)"
            ));
            continue;
        }
        let entries =
            std::fs::read_dir(locale.path()).map_err(|e| unreadable(&locale.path(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| unreadable(&locale.path(), e))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{name}/{file}");
            if file.starts_with('.') {
                continue;
            }
            let meta = entry.metadata().map_err(|e| unreadable(&entry.path(), e))?;
            if !meta.is_file() {
                report.warn(format!("{path}: not a file, ignored"));
                continue;
            }
            if meta.len() > MAX_FILE_BYTES {
                report
                    .problems
                    .push(Problem::file(path, "is larger than 64 KiB".to_string()));
                continue;
            }
            match std::fs::read_to_string(entry.path()) {
                Ok(text) => files.push(TemplateFile { path, text }),
                Err(e) => report
                    .problems
                    .push(Problem::file(path, format!("cannot be read: {e}"))),
            }
        }
    }
    if report.problems.is_empty() {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    } else {
        Err(report)
    }
}

/// A checked template set, ready to render.
pub struct TemplateSet {
    /// One environment per locale; templates are named by their path (`en/x.txt`).
    pub(super) envs: BTreeMap<LocaleTag, Environment<'static>>,
    pub(super) default: LocaleTag,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet")
            .field("locales", &self.envs.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

/// A notice's text as its templates made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedText {
    pub subject: String,
    pub content: String,
    pub html: Option<String>,
}

/// A new environment for one locale's templates: strict undefined, includes relative to
/// the locale's directory, `none` refused when printed.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_path_join_callback(|name, parent| match parent.split_once('/') {
        Some((locale, _)) if !name.contains('/') => format!("{locale}/{name}").into(),
        _ => name.into(),
    });
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Err(minijinja::Error::new(
                ErrorKind::UndefinedError,
                "a value that is not set (none) is printed; test it with {% if … %} first",
            ));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

/// The template name of a kind's file in a locale.
pub fn file_name(locale: &LocaleTag, kind: NoticeKind, ext: &str) -> String {
    format!("{locale}/{}.{ext}", kind.code())
}

impl TemplateSet {
    /// The locale every kind is complete in.
    pub fn default_locale(&self) -> &LocaleTag {
        &self.default
    }

    pub fn locales(&self) -> impl Iterator<Item = &LocaleTag> {
        self.envs.keys()
    }

    /// Whether `locale` has a subject and a body for `kind`.
    pub fn has(&self, locale: &LocaleTag, kind: NoticeKind) -> bool {
        self.envs.get(locale).is_some_and(|env| {
            [SUBJECT, TEXT]
                .iter()
                .all(|ext| env.get_template(&file_name(locale, kind, ext)).is_ok())
        })
    }

    /// The first locale of `chain` that has `kind` (the default locale always has it).
    pub fn choose<'a>(&self, chain: &'a [LocaleTag], kind: NoticeKind) -> &'a LocaleTag {
        chain
            .iter()
            .find(|l| self.has(l, kind))
            .or_else(|| chain.last())
            .expect("a fallback chain ends with the default locale")
    }

    /// Render `kind` in `locale` with `ctx`. The subject is one line; the body loses
    /// trailing spaces and runs of blank lines.
    pub fn render(
        &self,
        locale: &LocaleTag,
        kind: NoticeKind,
        ctx: &Value,
    ) -> Result<RenderedText, minijinja::Error> {
        let env = self.envs.get(locale).ok_or_else(|| {
            minijinja::Error::new(ErrorKind::TemplateNotFound, format!("no locale {locale}"))
        })?;
        let render = |ext: &str| env.get_template(&file_name(locale, kind, ext))?.render(ctx);
        let subject = render(SUBJECT)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if subject.is_empty() {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "{} renders an empty subject",
                    file_name(locale, kind, SUBJECT)
                ),
            ));
        }
        let content = tidy(&render(TEXT)?);
        let html = match env.get_template(&file_name(locale, kind, HTML)) {
            Ok(t) => Some(t.render(ctx)?.trim().to_string()),
            Err(e) if e.kind() == ErrorKind::TemplateNotFound => None,
            Err(e) => return Err(e),
        };
        Ok(RenderedText {
            subject,
            content,
            html,
        })
    }
}

/// Trailing spaces off every line, at most one blank line in a row, none at either end.
fn tidy(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() && out.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::tidy;

    #[test]
    fn bodies_are_tidied() {
        assert_eq!(tidy("\n\nHello  \n\n\n\nBye\n\n"), "Hello\n\nBye");
    }
}
