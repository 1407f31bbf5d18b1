import {
  type AuditDetails,
  type AuditEvent,
  type AuditEventOf,
  type AuditEventType,
  callerText,
} from "@perishable/protocol";
import type { AuditLine, Subject } from "../store/types.js";

export const encodeEvent = (event: AuditEvent): AuditLine => JSON.stringify(event) as AuditLine;

/**
 * `callerText` of the short strings events carry again and again (upstream and scope names,
 * methods, paths, models): a pure function, so its answers are kept — two regular expressions
 * over every string of every event were one of the costs of a proxied request. Only strings it
 * leaves as they are: one that held a credential is never kept, not even as a key. The JSON
 * literal is kept beside it, for `encodeAudit`.
 */
const MAX_KEPT = 4_096;
const literals = new Map<string, string>();
const literalOf = (value: string): string => {
  if (value.length > 128) return JSON.stringify(callerText(value));
  let literal = literals.get(value);
  if (literal === undefined) {
    const safe = callerText(value);
    literal = JSON.stringify(safe);
    if (safe !== value) return literal;
    if (literals.size >= MAX_KEPT) literals.clear();
    literals.set(value, literal);
  }
  return literal;
};

/** Details that are workload identities: their issuer and subject are caller text too. */
const WHO: readonly string[] = ["identity", "actor"];

/**
 * The fields every event carries, from what the store told about the subject. Every string of
 * `details` (rules, paths, upstream and model names: much of it caller-supplied) goes through
 * `callerText`: the one choke point between what a caller sent and what the trail stores.
 */
export const auditEvent = <T extends AuditEventType>(
  type: T,
  subject: Subject | null,
  requestId: string | null,
  at: number,
  details: AuditDetails<T>,
): AuditEventOf<T> => {
  const event: Record<string, unknown> = {
    at: new Date(at).toISOString(),
    type,
    requestId,
    grantId: subject?.grantId ?? null,
    tokenId: subject?.tokenId ?? null,
    rootGrantId: subject?.rootGrantId ?? null,
    parentGrantId: subject?.parentGrantId ?? null,
    agent: subject?.agent ?? null,
    ...(subject?.onBehalfOf ? { onBehalfOf: subject.onBehalfOf } : {}),
  };
  for (const [key, value] of Object.entries(details)) {
    event[key] = typeof value === "string" ? callerText(value) : value;
  }
  // Workload identities (an issued grant's, an exchange's actor): issuer and subject go through callerText too.
  for (const key of WHO) {
    const who = (details as Record<string, { issuer: string; subject: string } | undefined>)[key];
    if (who) event[key] = { issuer: callerText(who.issuer), subject: callerText(who.subject) };
  }
  return event as AuditEventOf<T>;
};

const BASE_KEYS = new Set([
  "at",
  "type",
  "requestId",
  "grantId",
  "tokenId",
  "rootGrantId",
  "parentGrantId",
  "agent",
  "onBehalfOf",
]);
const NO_SUBJECT = ',"grantId":null,"tokenId":null,"rootGrantId":null,"parentGrantId":null,"agent":null';
/** A subject's part of every event, per subject object (the node-local path keeps one per token). */
const subjectParts = new WeakMap<Subject, string>();
const subjectPart = (subject: Subject | null): string => {
  if (subject === null) return NO_SUBJECT;
  let part = subjectParts.get(subject);
  if (part === undefined) {
    part = `,"grantId":${JSON.stringify(subject.grantId ?? null)},"tokenId":${JSON.stringify(subject.tokenId ?? null)},"rootGrantId":${JSON.stringify(subject.rootGrantId ?? null)},"parentGrantId":${JSON.stringify(subject.parentGrantId ?? null)},"agent":${JSON.stringify(subject.agent ?? null)}${subject.onBehalfOf ? `,"onBehalfOf":${JSON.stringify(subject.onBehalfOf)}` : ""}`;
    subjectParts.set(subject, part);
  }
  return part;
};
let lastAt = Number.NaN;
let lastIso = "";
const isoOf = (at: number): string => {
  if (at !== lastAt) {
    lastIso = new Date(at).toISOString();
    lastAt = at;
  }
  return lastIso;
};

/**
 * `encodeEvent(auditEvent(...))` without building the event: the same JSON text (the same keys
 * in the same order, the same `callerText` on every string of `details`), written piece by
 * piece from kept parts — a subject's part, the literals of repeated strings, the last
 * millisecond's timestamp. It is the `used` event of every proxied request; a property test holds
 * it to the object path.
 */
export const encodeAudit = <T extends AuditEventType>(
  type: T,
  subject: Subject | null,
  requestId: string | null,
  at: number,
  details: AuditDetails<T>,
): AuditLine => {
  let out = `{"at":"${isoOf(at)}","type":${literalOf(type)},"requestId":${JSON.stringify(requestId)}${subjectPart(subject)}`;
  const fields = details as Record<string, unknown>;
  for (const key in fields) {
    const value = fields[key];
    if (BASE_KEYS.has(key))
      return encodeEvent(auditEvent(type, subject, requestId, at, details) as AuditEvent);
    switch (typeof value) {
      case "string":
        out += `,"${key}":${literalOf(value)}`;
        break;
      case "number":
        out += `,"${key}":${Number.isFinite(value) ? String(value) : "null"}`;
        break;
      case "boolean":
        out += `,"${key}":${value}`;
        break;
      case "undefined":
      case "function":
      case "symbol":
        break;
      default:
        if (WHO.includes(key) && value !== null) {
          const { issuer, subject: who } = value as { issuer: string; subject: string };
          out += `,"${key}":${JSON.stringify({ issuer: callerText(issuer), subject: callerText(who) })}`;
        } else {
          const json = JSON.stringify(value);
          if (json !== undefined) out += `,"${key}":${json}`;
        }
    }
  }
  return `${out}}` as AuditLine;
};
