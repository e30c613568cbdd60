/**
 * A small labelled set for archival search quality: 24 memories of one user, 18 queries each
 * with the memory that answers it. Most queries are paraphrases (no word in common with their
 * memory, as people ask); a few repeat a rare word of it. hits@1 = share of queries whose
 * expected memory comes first. The fake model's embeddings (SYNONYM_GROUPS) make synonyms close.
 */
export const ARCHIVAL_MEMORIES = [
  "Ana, the user's wife, works as a software engineer at Globex.",
  "The user drives a red Toyota sedan bought in 2019.",
  "The user's dog Rex is a three year old beagle.",
  "The user is allergic to peanuts and carries an EpiPen.",
  "The user's birthday is on the 14th of March.",
  "The user lives in a small apartment in Lisbon.",
  "Favourite film: Spirited Away, watched it five times.",
  "The user's son Leo plays football on Saturdays.",
  "Salary review is due in June; current income is 85k.",
  "The user had the flu last week and stayed in bed.",
  "Planning a vacation to Japan in October.",
  "The user prefers a vegetarian dinner and spicy cuisine.",
  "The user's smartphone is a Pixel 8 with a cracked screen.",
  "Listens to jazz music while coding, especially Coltrane.",
  "Reading a novel by Ursula Le Guin every evening.",
  "Goes to the gym three times a week for a workout.",
  "Has insomnia and rarely falls asleep before 2am.",
  "Drinks two espressos every morning, no sugar.",
  "Weekly standup meeting with the platform team on Mondays at 10.",
  "The VPN login credentials are stored in the team vault.",
  "The user's kitten Mochi naps on the keyboard.",
  "The user's physician is Dr. Silva at the Lapa clinic.",
  "Grows tomatoes and basil in a balcony garden.",
  "Quarterly report: revenue grew in the Nordic region.",
];

/** [query, index of the expected memory]. */
export const ARCHIVAL_QUERIES: [string, number][] = [
  ["what car does the user drive", 1],
  ["automobile", 1],
  ["puppy", 2],
  ["which nuts must be avoided", 3],
  ["when was the user born", 4],
  ["where is the user's home", 5],
  ["favourite movie", 6],
  ["kids", 7],
  ["how much does the user earn", 8],
  ["was the user ill recently", 9],
  ["holiday plans", 10],
  ["mobile phone", 12],
  ["jazz", 13],
  ["espresso", 17],
  ["team vault credentials", 19],
  ["medic", 21],
  ["Rex", 2],
  ["tomatoes", 22],
];
