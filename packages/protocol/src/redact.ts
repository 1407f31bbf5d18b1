/**
 * One pass over the text for every credential shape: perishable tokens (the non-secret tree part
 * is kept, so a redacted line still tells which lineage it was), perishable keys, OpenAI,
 * Anthropic, Google, GitHub, Slack and AWS access keys, and bearer credentials. Already-redacted
 * text is left as it is.
 */
const CREDENTIAL =
  /\bprs_[A-Za-z0-9_-]{8,}(?![A-Za-z0-9_[-])|\bsk-ant-[A-Za-z0-9_-]{8,}|\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}|\b(?:pik|pak|sec)_[A-Za-z0-9_-]{16,}|\bAIza[0-9A-Za-z_-]{30,}|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}|\bxox[abpsr]-[A-Za-z0-9-]{10,}|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{16,}/g;

const TOKEN_SHAPE = /^prs_[0-9a-z]{10}_/;

const mask = (match: string): string => {
  if (match.startsWith("prs_"))
    return TOKEN_SHAPE.test(match) ? `${match.slice(0, 15)}[redacted]` : "prs_[redacted]";
  if (match.startsWith("sk-ant-")) return "sk-ant-[redacted]";
  if (match.startsWith("sk-")) return "sk-[redacted]";
  if (match.startsWith("github_pat_")) return "github_pat_[redacted]";
  if (match[0] === "B" || match[0] === "b") {
    // A bearer credential of a known shape keeps its non-secret prefix (a token's tree).
    const credential = match.slice(6).trimStart();
    const masked = credential.replace(CREDENTIAL, mask);
    return `${match.slice(0, 6)} ${masked === credential ? "[redacted]" : masked}`;
  }
  const underscore = match.indexOf("_");
  const dash = match.indexOf("-");
  if (match.startsWith("AIza") || match.startsWith("AKIA") || match.startsWith("ASIA"))
    return `${match.slice(0, 4)}[redacted]`;
  const cut = underscore > 0 && (dash < 0 || underscore < dash) ? underscore : dash;
  return `${match.slice(0, cut + 1)}[redacted]`;
};

/** Masks credentials in text before it is logged or shown. Safe to run on every log line. */
export const redact = (text: string): string => text.replace(CREDENTIAL, mask);
