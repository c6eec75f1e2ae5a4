// The signed-in user: a token pasted at sign-in (development: `gridhub token issue`), kept in
// session storage only (never in a URL or local storage), and what the hub says it may do.

const KEY = "gridhub.token";

/** The claims the console reads from the token (for display; the hub verifies them). */
export interface Claims {
  sub: string;
  roles: string[];
  region: string;
  unit?: string;
  exp?: number;
}

function decodePart(part: string): unknown {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const pad = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(pad), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** The claims of a JWT, or null when it is not one. */
export function claimsOf(token: string): Claims | null {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return null;
  try {
    const c = decodePart(parts[1]) as Partial<Claims>;
    if (typeof c.sub !== "string" || !Array.isArray(c.roles)) return null;
    return {
      sub: c.sub,
      roles: c.roles.filter((r): r is string => typeof r === "string"),
      region: typeof c.region === "string" ? c.region : "",
      unit: typeof c.unit === "string" ? c.unit : undefined,
      exp: typeof c.exp === "number" ? c.exp : undefined,
    };
  } catch {
    return null;
  }
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function signIn(t: string): void {
  sessionStorage.setItem(KEY, t.trim());
}

/** Why the user was signed out, shown on the sign-in page. */
let reason = "";

export function signOut(why = ""): void {
  sessionStorage.removeItem(KEY);
  reason = why;
}

export function takeReason(): string {
  const r = reason;
  reason = "";
  return r;
}

export function expired(c: Claims, now = Date.now()): boolean {
  return c.exp !== undefined && c.exp * 1000 <= now;
}
