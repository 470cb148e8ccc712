-- The optional HTML body of a notice, rendered with its subject and text when the notice
-- was created (NULL when the template set has no HTML template for its kind and locale).
ALTER TABLE notices ADD COLUMN html TEXT;
