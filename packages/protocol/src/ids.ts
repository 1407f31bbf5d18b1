/**
 * Identifier and token formats.
 *
 * Every grant belongs to a lineage tree. The tree is named by the first TREE_LENGTH characters
 * of the root grant's random part; children, token ids and tokens repeat it, so any of them
 * leads the broker straight to the tree's Redis hash slot without a lookup.
 *
 *   grant id   gr_<tree:10><rest:16>    (root: 26 random characters; child: root's tree + 16)
 *   token id   tk_<tree:10><rest:16>    public, safe to log (like Vault's accessor)
 *   token      prs_<tree:10>_<secret:43> the secret part is 256 random bits, base64url
 */
export const TOKEN_PREFIX = "prs_";
export const GRANT_ID_PREFIX = "gr_";
export const TOKEN_ID_PREFIX = "tk_";
export const TREE_LENGTH = 10;
export const ID_BODY_LENGTH = 26;
export const TOKEN_SECRET_LENGTH = 43;

/** Crockford's base32 alphabet, lower case: no i, l, o, u, so ids read aloud unambiguously. */
export const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export const TOKEN_RE = /^prs_([0-9a-hjkmnp-tv-z]{10})_([A-Za-z0-9_-]{43})$/;
export const GRANT_ID_RE = /^gr_([0-9a-hjkmnp-tv-z]{10})[0-9a-hjkmnp-tv-z]{16}$/;
export const TOKEN_ID_RE = /^tk_([0-9a-hjkmnp-tv-z]{10})[0-9a-hjkmnp-tv-z]{16}$/;

/** The tree a token belongs to, or undefined when the string is not a well-formed token. */
export const tokenTree = (token: string): string | undefined => TOKEN_RE.exec(token)?.[1];
export const grantTree = (grantId: string): string | undefined => GRANT_ID_RE.exec(grantId)?.[1];
export const tokenIdTree = (tokenId: string): string | undefined => TOKEN_ID_RE.exec(tokenId)?.[1];

export const looksLikeToken = (value: string): boolean => value.startsWith(TOKEN_PREFIX);
