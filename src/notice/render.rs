//! Rendering a notice when it is created: choose its language, gather the brand values,
//! build the allow-listed context and run its templates. The result is stored with the
//! notice, so every retry sends the same text under the same key, whatever happens to the
//! templates meanwhile.

use std::sync::Arc;

use chrono_tz::Tz;

use super::context::{self, Brand, BrandValues, Display};
use super::locale::{fallback_chain, LocaleTag};
use super::templates::TemplateSet;
use super::{Notice, NoticeKind};
use crate::gigs::GigsClient;
use crate::outbound::CallError;

/// The operator's notice settings: templates, brand values, display zone, default locale.
#[derive(Clone)]
pub struct NoticeSettings {
    pub templates: Arc<TemplateSet>,
    /// `BRAND_NAME` (unset, the Gigs project's name is used) and the support contacts.
    pub brand: BrandValues,
    /// `DISPLAY_TIMEZONE`: times in notices are shown in this zone.
    pub zone: Tz,
}

impl std::fmt::Debug for NoticeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoticeSettings")
            .field("templates", &self.templates)
            .field("brand_name", &self.brand.name)
            .field("zone", &self.zone.name())
            .finish_non_exhaustive()
    }
}

impl NoticeSettings {
    /// Render `notice` in `locale` (which must have the kind, or be the default).
    pub fn render_in(
        &self,
        notice: &Notice,
        locale: &LocaleTag,
        brand: &Brand,
    ) -> Result<Rendered, minijinja::Error> {
        let display = Display {
            zone: self.zone,
            locale,
        };
        let ctx = context::build(notice, brand, display);
        let text = self.templates.render(locale, notice.kind(), &ctx)?;
        Ok(Rendered {
            subject: text.subject,
            content: text.content,
            html: text.html,
            locale: locale.clone(),
        })
    }
}

/// A rendered notice and the language it was rendered in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub content: String,
    pub html: Option<String>,
    pub locale: LocaleTag,
}

/// The locale a notice of `kind` is written in: the first of the fallback chain that has
/// the kind.
pub fn choose_locale(
    templates: &TemplateSet,
    kind: NoticeKind,
    user: Option<&LocaleTag>,
    project: &[LocaleTag],
) -> LocaleTag {
    let chain = fallback_chain(user, project, templates.default_locale());
    templates.choose(&chain, kind).clone()
}

/// Renders notices for the worker, asking the Core API for the project only when it needs
/// its name (no `BRAND_NAME`) or its locales (the user's language is not available).
#[derive(Clone)]
pub struct Renderer {
    settings: NoticeSettings,
    gigs: GigsClient,
}

impl Renderer {
    pub fn new(settings: NoticeSettings, gigs: GigsClient) -> Self {
        Self { settings, gigs }
    }

    /// Render `notice` for a user whose preferred locale is `user` (if known). A Core API
    /// failure worth retrying is returned as such; a template failure is permanent.
    pub async fn render(
        &self,
        notice: &Notice,
        user: Option<&LocaleTag>,
    ) -> Result<Rendered, CallError> {
        let templates = &self.settings.templates;
        let kind = notice.kind();
        let user_has_it = user
            .into_iter()
            .flat_map(|u| std::iter::once(u.clone()).chain(u.language()))
            .any(|l| templates.has(&l, kind));
        let project = if self.settings.brand.name.is_none() || !user_has_it {
            self.gigs.project().await?
        } else {
            None
        };
        let project_locales = project
            .as_ref()
            .map(|p| p.locales.as_slice())
            .unwrap_or(&[]);
        let locale = choose_locale(templates, kind, user, project_locales);
        let name = project
            .as_ref()
            .and_then(|p| p.name.clone())
            .unwrap_or_else(|| self.gigs.project_id().to_string());
        let brand = self.settings.brand.for_project(&name);
        self.settings
            .render_in(notice, &locale, &brand)
            .map_err(|e| {
                CallError::permanent(format!(
                    "notice {} cannot be rendered in {locale}: {e}",
                    kind.code()
                ))
            })
    }
}
