//! Checking a template set before it is trusted: every file parses; every template names
//! only the variables its kind may use (found statically, so a branch no sample reaches is
//! checked too); the default locale has every kind; and every kind renders, in every locale,
//! with sample notices and the brand values. `serve` refuses a set with any problem;
//! `templates check` prints them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono_tz::Tz;

use super::context::{self, all_variables, Brand, Display, BRAND_FIELDS, ENGINE_NAMES};
use super::locale::LocaleTag;
use super::samples::samples;
use super::templates::{environment, file_name, TemplateFile, TemplateSet, HTML, SUBJECT, TEXT};
use super::NoticeKind;

/// One thing wrong with a template: the file, the line when known, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn file(file: String, message: String) -> Self {
        Self {
            file,
            line: None,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// What a check found: problems stop the set from being used, warnings do not.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn fail(problem: Problem) -> Self {
        Self {
            problems: vec![problem],
            warnings: Vec::new(),
        }
    }

    pub fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// Record a problem, unless its file already has one (one error per file is enough
    /// to find it; the rest usually follow from the first).
    fn problem(&mut self, problem: Problem) {
        if !self.problems.iter().any(|p| p.file == problem.file) {
            self.problems.push(problem);
        }
    }
}

impl fmt::Display for Report {
    /// The problems, one a line (what `serve` prints when it refuses to start).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
        write!(f, "{}", lines.join("; "))
    }
}

/// What a file of the set is.
enum Role {
    Kind(NoticeKind),
    Partial,
}

/// Build and check a set. `brands` are the brand values to render the samples with (the
/// configured ones; several variants when checking without them).
pub fn load(
    files: Vec<TemplateFile>,
    default: &LocaleTag,
    brands: &[Brand],
    zone: Tz,
) -> (Option<TemplateSet>, Report) {
    let mut report = Report::default();
    let mut envs = BTreeMap::new();
    for file in files {
        let Some((dir, name)) = file.path.split_once('/') else {
            report.warn(format!("{}: not in a locale directory, ignored", file.path));
            continue;
        };
        let Some(locale) = LocaleTag::parse(dir) else {
            report.warn(format!("{dir}/: not a locale tag, ignored"));
            continue;
        };
        let Some(role) = role(name, &mut report, &file.path) else {
            continue;
        };
        let path = format!("{locale}/{name}");
        if let Some((line, c)) = control_character(&file.text) {
            report.problem(Problem {
                file: path,
                line: Some(line),
                message: format!(
                    "holds the control character U+{:04X}: mail services and PostgreSQL refuse \
                     it in text (only tabs and line breaks may appear)",
                    c as u32
                ),
            });
            continue;
        }
        let env = envs.entry(locale).or_insert_with(environment);
        if let Err(e) = env.add_template_owned(path.clone(), file.text.clone()) {
            report.problem(Problem {
                file: path,
                line: e.line(),
                message: describe(&e),
            });
            continue;
        }
        let template = env.get_template(&path).expect("template was just added");
        let allowed = match role {
            Role::Kind(kind) => kind.variables(),
            Role::Partial => all_variables(),
        };
        for var in sorted(template.undeclared_variables(true)) {
            if let Some(message) = not_allowed(&var, &allowed, &role) {
                let top = var.split('.').next().unwrap_or(&var);
                report.problem(Problem {
                    file: path.clone(),
                    line: find_line(&file.text, top),
                    message,
                });
            }
        }
    }
    let set = TemplateSet {
        envs,
        default: default.clone(),
    };
    completeness(&set, &mut report);
    if !report.problems.is_empty() {
        return (None, report);
    }
    render_samples(&set, brands, zone, &mut report);
    if report.problems.is_empty() {
        (Some(set), report)
    } else {
        (None, report)
    }
}

fn sorted(vars: std::collections::HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = vars.into_iter().collect();
    v.sort();
    v
}

/// What `name` (`plan_changed.txt`, `_footer.txt`) is; `None` (with a warning) if nothing.
fn role(name: &str, report: &mut Report, path: &str) -> Option<Role> {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        report.warn(format!(
            "{path}: no .subject, .txt or .html extension, ignored"
        ));
        return None;
    };
    if ![SUBJECT, TEXT, HTML].contains(&ext) {
        report.warn(format!(
            "{path}: not a .subject, .txt or .html file, ignored"
        ));
        return None;
    }
    if stem.starts_with('_') {
        return Some(Role::Partial);
    }
    match NoticeKind::from_code(stem) {
        Some(kind) => Some(Role::Kind(kind)),
        None => {
            report.warn(format!(
                "{path}: {stem:?} is not a notice kind, ignored (see `templates preview --help`)"
            ));
            None
        }
    }
}

/// Why `var` (`plan`, `brand.name`) may not be used here, if it may not.
fn not_allowed(var: &str, allowed: &[&str], role: &Role) -> Option<String> {
    let mut parts = var.split('.');
    let top = parts.next().unwrap_or(var);
    if ENGINE_NAMES.contains(&top) {
        return None;
    }
    if !allowed.contains(&top) {
        let whose = match role {
            Role::Kind(kind) => format!("{} templates", kind.code()),
            Role::Partial => "partials".to_string(),
        };
        return Some(format!(
            "variable `{top}` is not allowed; {whose} may use only: {}",
            allowed.join(", ")
        ));
    }
    match (top, parts.next()) {
        ("brand", Some(attr)) if !BRAND_FIELDS.contains(&attr) => Some(format!(
            "variable `brand.{attr}` is not allowed; brand has only: {}",
            BRAND_FIELDS.join(", ")
        )),
        _ => None,
    }
}

/// The first line (from 1) where `word` appears as a whole identifier.
pub fn find_line(text: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.lines()
        .position(|line| {
            line.match_indices(word).any(|(i, _)| {
                let before = line[..i].chars().next_back();
                let after = line[i + word.len()..].chars().next();
                !before.is_some_and(ident) && !after.is_some_and(ident)
            })
        })
        .map(|i| i + 1)
}

/// minijinja's kind and detail, without its own "(in file:line)" (the problem says that).
fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Every kind in the default locale; in another locale a missing kind is a warning.
fn completeness(set: &TemplateSet, report: &mut Report) {
    let default = &set.default;
    if !set.envs.contains_key(default) {
        report.problems.push(Problem::file(
            format!("{default}/"),
            format!("the default locale ({default}, DEFAULT_LOCALE) has no templates"),
        ));
        return;
    }
    for kind in NoticeKind::ALL {
        for ext in [SUBJECT, TEXT] {
            let name = file_name(default, kind, ext);
            // A file that failed to parse is not also reported missing.
            if set.envs[default].get_template(&name).is_err() {
                report.problem(Problem::file(
                    name,
                    format!(
                        "missing: the default locale ({default}) needs a subject and a body \
                         for every kind"
                    ),
                ));
            }
        }
    }
    let others: BTreeSet<&LocaleTag> = set.envs.keys().filter(|l| *l != default).collect();
    for locale in others {
        for kind in NoticeKind::ALL {
            if !set.has(locale, kind) {
                report.warn(format!(
                    "{locale}: no complete {} (subject and body); notices of this kind fall \
                     back to the next locale",
                    kind.code()
                ));
            }
        }
    }
}

/// The first control character other than a tab or a line break, with its line: a NUL
/// would make every notice of its kind unstorable on PostgreSQL, so the event behind it
/// would be retried for ever.
fn control_character(text: &str) -> Option<(usize, char)> {
    text.lines().enumerate().find_map(|(i, line)| {
        line.chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\r'))
            .map(|c| (i + 1, c))
    })
}

/// Render every sample of every kind in every locale that has it.
fn render_samples(set: &TemplateSet, brands: &[Brand], zone: Tz, report: &mut Report) {
    for locale in set.envs.keys() {
        for kind in NoticeKind::ALL.into_iter().filter(|k| set.has(locale, *k)) {
            for notice in samples(kind) {
                for brand in brands {
                    let ctx = context::build(&notice, brand, Display { zone, locale });
                    if let Err(e) = set.render(locale, kind, &ctx) {
                        report.problem(Problem {
                            file: e
                                .name()
                                .map(str::to_string)
                                .unwrap_or_else(|| file_name(locale, kind, TEXT)),
                            line: e.line(),
                            message: describe(&e),
                        });
                    }
                }
            }
        }
    }
}
