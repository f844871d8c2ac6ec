#!/usr/bin/env python3
"""Writes the quickstart's sample files (deterministic; the output is committed).

day1: 2,000 customers (CSV) and 5,000 orders (JSONL).
day2: 200 changed + 100 new customers with a new column `loyalty_tier`,
      500 orders whose status changed + 1,000 new orders.
"""
import csv, json, random
from datetime import datetime, timedelta

random.seed(20261126)
FIRST = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger", "Radia"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "O'Brien, Jr.", "Perlman"]
COUNTRIES = ["DE", "FR", "US", "JP", "BR", "IN", "NG", "SE", "ES", "CA"]
STATUS = ["placed", "paid", "shipped", "delivered", "returned"]
T0 = datetime(2026, 11, 1, 8, 0, 0)


def customer(i, day):
    name = f"{random.choice(FIRST)} {random.choice(LAST)}"
    return {
        "id": i,
        "name": name,
        "email": f"user{i}@example.com",
        "country": random.choice(COUNTRIES),
        "signup_date": (T0 - timedelta(days=random.randint(0, 900))).strftime("%Y-%m-%d"),
        "updated_at": (T0 + timedelta(days=day - 1, minutes=i)).strftime("%Y-%m-%d %H:%M:%S"),
    }


def order(i, day, status=None):
    items = [{"sku": f"SKU-{random.randint(1, 300):03d}", "qty": random.randint(1, 4)} for _ in range(random.randint(1, 3))]
    return {
        "order_id": i,
        "customer_id": random.randint(1, 2000),
        "amount": round(random.uniform(5, 900), 2),
        "status": status or random.choice(STATUS[:3]),
        "ordered_at": (T0 + timedelta(days=day - 1, seconds=i * 7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "items": items,
        "shipping": {"city": random.choice(["Berlin", "Lyon", "Austin", "Osaka", "Recife"]), "express": random.random() < 0.2},
    }


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


cust1 = [customer(i, 1) for i in range(1, 2001)]
fields1 = list(cust1[0].keys())
write_csv("data/day1/customers_day1.csv", cust1, fields1)
orders1 = [order(i, 1) for i in range(1, 5001)]
write_jsonl("data/day1/orders_day1.jsonl", orders1)

changed = random.sample(range(1, 2001), 200)
cust2 = []
for i in sorted(changed):
    c = dict(cust1[i - 1])
    c["email"] = f"user{i}.new@example.org"
    c["country"] = random.choice(COUNTRIES)
    c["updated_at"] = (T0 + timedelta(days=1, minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
    c["loyalty_tier"] = random.choice(["bronze", "silver", "gold"])
    cust2.append(c)
for i in range(2001, 2101):
    c = customer(i, 2)
    c["loyalty_tier"] = random.choice(["bronze", "silver", "gold", ""])
    cust2.append(c)
write_csv("data/day2/customers_day2.csv", cust2, fields1 + ["loyalty_tier"])

updated = random.sample(range(1, 5001), 500)
orders2 = []
for i in sorted(updated):
    o = dict(orders1[i - 1])
    o["status"] = random.choice(STATUS[2:])
    orders2.append(o)
orders2 += [order(i, 2) for i in range(5001, 6001)]
write_jsonl("data/day2/orders_day2.jsonl", orders2)
